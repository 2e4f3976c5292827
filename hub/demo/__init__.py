"""The demo campus: simulator, local test counterparts and the end-to-end run."""
