"""``postgate demo``: the whole pipeline on embedded defaults, start to finish."""
