"""Where inputs come from: weights (official, user, synthetic), downloads, the corpus and its ids."""
