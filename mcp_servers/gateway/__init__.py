"""The HTTP gateway mounting every tool server in one app, and the stdio/HTTP runners."""
