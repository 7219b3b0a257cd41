"""Training side of reasoner: labelled PRM data (records), trainers and tokenizer helpers."""
