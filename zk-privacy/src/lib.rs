//! SuperVM privacy: a Groth16 proving service over BN254 and the confidential-transfer circuit.
