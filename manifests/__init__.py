"""The data contract of jstip: record types, their Arrow schemas, and the only Parquet I/O."""
from .errors import AudioError, JstipError, ManifestError
from .schema import Alignment, Hypothesis, Rejected, Sample, Span, Text, Utterance, WordSpan

__all__ = ["Alignment", "AudioError", "Hypothesis", "JstipError", "ManifestError", "Rejected", "Sample", "Span", "Text",
           "Utterance", "WordSpan"]
