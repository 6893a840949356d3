"""The files server: workspace-confined file tools."""
