"""neuralgraph's ASR plugin: QuartzNet/Jasper CTC speech recognition (NeMo 1.x names)."""
