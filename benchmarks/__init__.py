"""Performance comparisons of glasses-sdk against the libraries people use today."""
