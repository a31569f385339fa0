"""The operator web page: tenants' rates and states, campaigns in flight, the kill switch
and the audit log, behind a login with an operator key."""
