"""The benchmark suite (DESIGN.md §8): qgen side by side with its peers, ratios measured in one run."""
