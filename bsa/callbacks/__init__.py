"""Lightning callbacks: they decide *when*; modules decide *what*."""
