use std::sync::OnceLock;

use ark_bn254::{Bn254, Fr};
use ark_groth16::ProvingKey;
use zk_privacy::circuit::{InputNote, TransferCircuit};
use zk_privacy::demo::SquareChainCircuit;
use zk_privacy::note::{public_key, Note};
use zk_privacy::setup::dev_setup;
use zk_privacy::tree::NoteTree;

/// Depth used by the integration tests (the default depth 20 is exercised by the
/// `default_depth` test).
pub const TEST_DEPTH: usize = 8;

pub fn demo_key() -> &'static ProvingKey<Bn254> {
    static PK: OnceLock<ProvingKey<Bn254>> = OnceLock::new();
    PK.get_or_init(|| dev_setup(SquareChainCircuit::new(Fr::from(0u64), 64), b"demo").unwrap())
}

pub fn transfer_key() -> &'static ProvingKey<Bn254> {
    static PK: OnceLock<ProvingKey<Bn254>> = OnceLock::new();
    PK.get_or_init(|| dev_setup(TransferCircuit::blank(TEST_DEPTH), b"transfer-test").unwrap())
}

/// A wallet scenario: a tree holding two notes of `sk` (values 70 and 50) among others.
pub struct Scenario {
    pub tree: NoteTree,
    pub sk: Fr,
    pub notes: Vec<(Note, u64)>,
}

pub fn scenario(depth: usize) -> Scenario {
    let sk = Fr::from(123_456_789u64);
    let pk = public_key(sk);
    let mut tree = NoteTree::new(depth).unwrap();
    let mut notes = Vec::new();
    for i in 0..5u64 {
        // Some foreign notes in between.
        tree.append(Note::new(i, Fr::from(999u64), Fr::from(i)).commitment())
            .unwrap();
        if i == 1 || i == 3 {
            let note = Note::new(if i == 1 { 70 } else { 50 }, pk, Fr::from(1000 + i));
            let pos = tree.append(note.commitment()).unwrap();
            notes.push((note, pos));
        }
    }
    Scenario { tree, sk, notes }
}

/// Spends both notes of the scenario: 70 + 50 = 100 (to `to`) + 15 (change) + fee 5.
pub fn transfer_circuit(s: &Scenario, out_values: [u64; 2], fee: u64) -> TransferCircuit {
    let inputs = [0, 1].map(|i| {
        let (note, pos) = s.notes[i];
        InputNote {
            spending_key: s.sk,
            value: note.value,
            rho: note.rho,
            path: s.tree.path(pos).unwrap(),
        }
    });
    TransferCircuit {
        depth: s.tree.depth(),
        root: s.tree.root(),
        inputs,
        outputs: [
            Note::new(
                out_values[0],
                public_key(Fr::from(77u64)),
                Fr::from(5001u64),
            ),
            Note::new(out_values[1], public_key(s.sk), Fr::from(5002u64)),
        ],
        fee,
    }
}
