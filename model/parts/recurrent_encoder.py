"""The student encoder of Ding et al. 2022's multi-stage framework (stages 2-4): BERT-family embeddings whose word
table may be factorised, then one group of transformer layers run `repeat` times (parameter recurrence).

Followed: the authors' code, github.com/KB-Ding/Multi-stage-Distillaton-Framework,
model/distillation/bottle_distill.py (`Small_Embeddings`, lines 300-355; the same class in rec_bottle_distill.py and
model/multilingual/rec_bottle_mcl.py) and the `layers_forward` loop of those files (`for j in range(repeat): for
layer in kept layers`):
- word embeddings vocab x e, then a Linear e -> hidden WITHOUT bias (their `word_embeddings_2`, here
  `word_projection`); position and token-type embeddings and the embedding LayerNorm stay at the hidden width:
  LayerNorm(word[x] @ A + position[p] + type[t]), then dropout;
- embedding_size == hidden_size: no factorisation, the plain vocab x hidden table (their rec_distill / rec_mcl keep
  the source's own embedding layer);
- the kept layers are BERT layers (ALBERT's layer is the same computation under other names) run as
  [layer 0 .. layer k-1] x repeat.
Departures: positions are numbered from 0 as in BERT/ALBERT (RoBERTa-family sources have their position table
shifted at conversion, model/parts/recurrent_student.py), where the authors' embedding numbers them RoBERTa-style
from pad + 1 with a padding row, also for their BERT-layout MiniLM; token-type ids default to 0 as in both.

A transformers model (AlbertModel with these embeddings and no embedding_hidden_mapping_in), registered with
AutoConfig / AutoModel on import, so `AutoModel.from_pretrained` and `SentenceTransformer` load an export in any
process that imported this file; elsewhere pass trust_remote_code=True (save_pretrained copies this file, which
imports only torch and transformers, into the export and names it in config.json's auto_map)."""
import torch
from torch import nn
from transformers import AlbertConfig, AlbertModel, AutoConfig, AutoModel
from transformers.models.albert.modeling_albert import AlbertEmbeddings

MODEL_TYPE = "kdw_recurrent_bert"


class RecurrentBertConfig(AlbertConfig):
    """AlbertConfig read as: embedding_size = e, the word table's width (e == hidden_size: no factorisation);
    inner_group_num = the shared layers, num_hidden_layers = how many times they run, num_hidden_groups = 1."""
    model_type = MODEL_TYPE


class FactorisedEmbeddings(AlbertEmbeddings):
    """LayerNorm(word_projection(word[x]) + position[p] + type[t]) -> dropout; every table but the word one is
    hidden wide. Subclasses AlbertEmbeddings for its forward and for the buffer init of AlbertPreTrainedModel."""

    def __init__(self, config):
        nn.Module.__init__(self)
        hidden, e = config.hidden_size, config.embedding_size
        self.word_embeddings = nn.Embedding(config.vocab_size, e, padding_idx=config.pad_token_id)
        self.word_projection = nn.Linear(e, hidden, bias=False) if e != hidden else None
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, hidden)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings).expand((1, -1)), persistent=False)
        self.token_type_ids = nn.Buffer(torch.zeros(self.position_ids.size(), dtype=torch.long), persistent=False)

    def word(self, input_ids=None, inputs_embeds=None):
        """The word part at the hidden width (inputs_embeds, as from get_input_embeddings(), are e wide)."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        return inputs_embeds if self.word_projection is None else self.word_projection(inputs_embeds)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        return super().forward(None, token_type_ids=token_type_ids, position_ids=position_ids,
                               inputs_embeds=self.word(input_ids, inputs_embeds))


class RecurrentBertModel(AlbertModel):
    """AlbertModel (one shared layer group run num_hidden_layers times) on FactorisedEmbeddings: the embedding
    output is already hidden wide, so ALBERT's embedding_hidden_mapping_in is dropped."""
    config_class = RecurrentBertConfig
    config: RecurrentBertConfig

    def __init__(self, config, add_pooling_layer=False):
        super().__init__(config, add_pooling_layer=add_pooling_layer)
        self.embeddings = FactorisedEmbeddings(config)
        self.encoder.embedding_hidden_mapping_in = nn.Identity()
        self.post_init()

    def embedding_output(self, input_ids, token_type_ids=None):
        """What the shared layers receive (B, L, hidden)."""
        return self.embeddings(input_ids, token_type_ids=token_type_ids)


AutoConfig.register(MODEL_TYPE, RecurrentBertConfig, exist_ok=True)
AutoModel.register(RecurrentBertConfig, RecurrentBertModel, exist_ok=True)
RecurrentBertConfig.register_for_auto_class()
RecurrentBertModel.register_for_auto_class("AutoModel")
