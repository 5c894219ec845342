package forward

// ParseSecret decodes a Standard Webhooks signing secret as deliveries do:
// "whsec_" followed by base64 is decoded, any other value is used as raw
// bytes. Other signers of imedge's requests (the decision path) use it so
// one --forward-secret-file signs both the same way. Errors wrap
// [ErrInvalidOptions] and never contain the secret.
func ParseSecret(s []byte) ([]byte, error) { return parseSecret(s) }
