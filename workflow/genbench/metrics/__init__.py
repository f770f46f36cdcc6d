"""2D metrics on features: Fréchet distance (FID), Inception Score, bootstrap intervals."""
