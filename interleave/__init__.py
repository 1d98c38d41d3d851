"""Pure functions that turn aligned utterances and texts into interleaved speech-text samples."""
