"""Grace's live tools: the custom functions the voice agent calls during a call."""
