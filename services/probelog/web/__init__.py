"""The model explorer: a web page over SearchService (search, evidence, models), for people."""
