"""Carries out a Plan against Azure: level-triggered pool cycles, bounded waits, concurrency limits."""
