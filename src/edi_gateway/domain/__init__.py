"""Plain domain objects and the rules that derive order status. Imports nothing of ours."""
