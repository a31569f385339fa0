"""The platform's side of the engine: provisioning tenants and lists, syncing contacts and
suppressions from the CRM, and reading results back."""
