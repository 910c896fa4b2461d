"""RankerService: the in-memory sparse index and its ranking."""
