"""The queue runtime: the kombu broker, the runner loop every worker shares, publishing send
batches, Redis pub/sub and dead letters. Only workers, the HTTP app and the CLI import it;
the domain packages never do.
"""
