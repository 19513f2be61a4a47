"""Conversations: every message of a contact's thread both ways, replies routed by the sender
they came in on, attributed to the campaign they answer, and the reps' inbox."""
