"""Third-party inference servers Gauntlet can start, measure and certify."""
