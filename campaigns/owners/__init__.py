"""Who owns a follow-up task, and telling them: the routing rules and the owner alerts."""
