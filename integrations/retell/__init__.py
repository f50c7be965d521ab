"""Retell AI: outbound voice calls placed by the agent "Grace", and their signed webhooks."""
