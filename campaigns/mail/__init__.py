"""Follow-up e-mails: the payment link and a promise's summary, when a text cannot go or as a second channel."""
