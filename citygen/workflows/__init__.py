"""Research workflows built from the pieces: embed and compare cities, generate layouts from targets."""
