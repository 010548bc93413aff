"""The check both offline installers run on a converted folder (pretrained/mpnet_parts.py, pretrained/e5_q4.py)."""


def sentence_check(model_dir, query, pair):
    """What the installers compare with the real model: the tokenizer's ids of `query`, and the folder's own
    SentenceTransformer embeddings of `query` and `pair` (its pooling and normalisation)."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    ids = transformers.AutoTokenizer.from_pretrained(str(model_dir))(query)["input_ids"]
    st = SentenceTransformer(str(model_dir), device="cpu")
    with torch.inference_mode():
        a, b = st.encode([query, pair], convert_to_tensor=True)
    return list(ids), a, b
