"""Pages and mails postgate writes for visitors and recipients: hosted signup forms,
confirmation, unsubscribe and preference pages, error pages, confirmation mails and
footers, in the tenant's brand and the reader's language."""
