"""Teachers that write reasoning traces: an OpenAI-compatible API client and the offline grounded teacher."""
