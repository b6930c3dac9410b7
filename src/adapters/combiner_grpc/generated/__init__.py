"""Code generated from protos/fedn.proto by `make protos`. Do not edit."""
