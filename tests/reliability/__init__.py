"""Reliability and security suite: fault matrix, races, hostile input, soak (issue 7)."""
