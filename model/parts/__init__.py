"""Building blocks the method files in model/ compose: losses, intermediate features, layer maps, student
builders, the sentence-embedding base, matching helpers. No method is registered from here."""
