"""The schema registry, validators and schema derivation (public: :mod:`prefactor.schemas`)."""
