"""Operations: the command line, the in-process runner, reports, exports, the UI driver."""
