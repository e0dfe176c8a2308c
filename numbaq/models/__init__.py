"""Real models on numbaq layers. ``numbaq.models.minilm``: all-MiniLM-L6-v2."""
