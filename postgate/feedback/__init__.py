"""Reading what comes back from the world: bounces, complaints, unsubscribes."""
