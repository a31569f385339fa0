"""The event stream back to the CRM: the outbox, its order, the event exchange and the
tenants' webhook endpoints."""
