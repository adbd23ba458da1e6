"""Composable agents (script, synth, cut, enhance) and the Studio that chains them."""
