package keys

// Private exposes the decrypted private key to tests, which look for its
// bytes in the database.
func (k *Key) Private() any { return k.private }
