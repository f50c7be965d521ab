"""HeyMarket: templated SMS from the billing and resurrection inboxes, opt-out status, webhooks."""
