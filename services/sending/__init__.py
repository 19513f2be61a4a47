"""Sending: the dispatcher, the SMS providers (log, simulated, Twilio), delivery and metrics."""
