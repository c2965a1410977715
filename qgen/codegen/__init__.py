"""Code generation: expression printers and the per-kind code every target's templates use."""
