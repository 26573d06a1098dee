"""Monitoring inside the Bento: each worker's window of recent traffic and its feedback
(:mod:`.monitor`, :mod:`.window`, :mod:`.feedback`), what the workers share (:mod:`.sharing`), the
report and its gauges (:mod:`.report`, :mod:`.gauges`), and capture files (:mod:`.capture`)."""
