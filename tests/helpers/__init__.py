"""What tests share as a library (fixtures stay in the conftest files beside their tests)."""
