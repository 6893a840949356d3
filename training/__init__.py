"""Training: datasets from recorded episodes, rewards, the MCP GRPO environment, TRL trainers and evaluation."""
