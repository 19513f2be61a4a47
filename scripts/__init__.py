"""Developer commands: the embedded database bootstrap and the development token minter."""
