# pragma version ~=0.4.3
# claim.vy: accrue's claim contract: pays the entries of signed settlement batches.
#
# accrue's host cuts settlement batches from its ledger (meters/settle/settle.h): each batch nets a
# contiguous range of posted ledger transfers into entries (payee address, amount), commits to them
# with an OpenZeppelin StandardMerkleTree root over [address, uint256], and is signed by the host's
# key as EIP-712 typed data. This contract accepts the batches in order and pays each entry once,
# from native currency (ETH, or the chain's own coin) that the operator deposited.
#
# The typed data, which meters/settle/batch.c signs and this contract recomputes (keep both sides
# in step: a change here is a change there, and a new version string):
#
#     EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)
#         name = "accrue settlement", version = "1", chainId = the chain's id,
#         verifyingContract = this contract's address
#     Batch(uint64 sequence,bytes32 prevHash,uint64 firstTransfer,uint64 lastTransfer,
#           uint64 entryCount,uint256 total,bytes32 root,uint64 cutTime)
#         sequence       1 for the first batch, then +1 each
#         prevHash       the EIP-712 digest of batch sequence-1; zero for batch 1
#         firstTransfer  the ledger posting sequence numbers the batch covers, inclusive:
#         lastTransfer   firstTransfer = the previous batch's lastTransfer + 1 (1 for batch 1)
#         entryCount     the number of entries (payees) in the tree, at least 1
#         total          the sum of the entries' amounts, in ledger base units
#         root           the StandardMerkleTree root of the entries
#         cutTime        when the batch was cut, Unix seconds
#     digest = keccak256("\x19\x01" || domainSeparator || hashStruct(Batch))
#     signature = r || s || v, low s, v = 27 or 28 (0 and 1 are taken as 27 and 28)
#
# A leaf is keccak256(keccak256(abi.encode(address, uint256 amount))) and an inner node the
# keccak256 of its two children in ascending order: OpenZeppelin's MerkleProof.verify.
#
# Anyone may relay a signed batch or a claim (the signature and the proof are the authority; a
# claim always pays the entry's own address). The owner alone rotates the signer, hands over
# ownership, and withdraws what is deposited beyond what posted batches still owe. A batch's
# claims together can never take more than its signed total, even from a faulty tree.
#
# Units: an entry's amount is in ledger base units; a claim pays amount * WEI_PER_UNIT wei (set
# at deployment: 10**12 makes a base unit of 10^-6 ETH, 1 pays base units as wei).

"""
@title accrue claim contract
@license MIT
@notice Accepts accrue's signed settlement batches in order and pays each entry once.
"""

DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
BATCH_TYPEHASH: constant(bytes32) = keccak256(
    "Batch(uint64 sequence,bytes32 prevHash,uint64 firstTransfer,uint64 lastTransfer,uint64 entryCount,uint256 total,bytes32 root,uint64 cutTime)"
)
NAME_HASH: constant(bytes32) = keccak256("accrue settlement")
VERSION_HASH: constant(bytes32) = keccak256("1")
# secp256k1's order / 2: a larger s is the malleable twin of a low-s signature.
HALF_ORDER: constant(uint256) = 57896044618658097711785492504343953926418782139537452191302581570759080747168
# A proof of a tree of 2^64 leaves is 64 hashes long.
MAX_PROOF: constant(uint256) = 64

event BatchPosted:
    sequence: indexed(uint64)
    digest: indexed(bytes32)
    root: bytes32
    total: uint256
    entryCount: uint64
    firstTransfer: uint64
    lastTransfer: uint64
    cutTime: uint64

event Claimed:
    sequence: indexed(uint64)
    account: indexed(address)
    amount: uint256
    paid: uint256

event Deposited:
    sender: indexed(address)
    value: uint256

event SurplusWithdrawn:
    to: indexed(address)
    value: uint256

event SignerChanged:
    previous: indexed(address)
    signer: indexed(address)

event OwnershipTransferred:
    previous: indexed(address)
    owner: indexed(address)

WEI_PER_UNIT: public(immutable(uint256))

owner: public(address)
signer: public(address)

# The head of the chain: the last batch accepted.
last_sequence: public(uint64)
last_digest: public(bytes32)
last_transfer: public(uint64)

roots: public(HashMap[uint64, bytes32])
# Per batch, what its claims may still take (base units).
unclaimed: public(HashMap[uint64, uint256])
claimed: public(HashMap[uint64, HashMap[address, bool]])
# Wei that posted batches still owe: the deposit the owner cannot withdraw.
outstanding: public(uint256)


@deploy
def __init__(signer: address, wei_per_unit: uint256, last_sequence: uint64, last_digest: bytes32,
             last_transfer: uint64):
    """
    @param signer the host's address (`accrue address --key FILE`)
    @param wei_per_unit wei paid per ledger base unit
    @param last_sequence 0 for a new chain; else the batch this contract continues after (with its
           digest and last transfer), for a chain that moves to a new contract
    """
    assert signer != empty(address), "accrue: signer is the zero address"
    assert wei_per_unit > 0, "accrue: wei_per_unit is zero"
    assert (last_sequence == 0) == (last_digest == empty(bytes32)), "accrue: genesis needs both sequence and digest"
    WEI_PER_UNIT = wei_per_unit
    self.owner = msg.sender
    self.signer = signer
    self.last_sequence = last_sequence
    self.last_digest = last_digest
    self.last_transfer = last_transfer
    log OwnershipTransferred(previous=empty(address), owner=msg.sender)
    log SignerChanged(previous=empty(address), signer=signer)


@view
@external
def domain_separator() -> bytes32:
    return self._domain_separator()


@view
@internal
def _domain_separator() -> bytes32:
    # chain.id is read each time, so a fork of the chain gets a separator of its own.
    return keccak256(abi_encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, chain.id, self))


@view
@internal
def _digest(sequence: uint64, prev_hash: bytes32, first_transfer: uint64, last_transfer: uint64,
            entry_count: uint64, total: uint256, root: bytes32, cut_time: uint64) -> bytes32:
    struct_hash: bytes32 = keccak256(abi_encode(BATCH_TYPEHASH, sequence, prev_hash, first_transfer,
                                                last_transfer, entry_count, total, root, cut_time))
    return keccak256(concat(b"\x19\x01", self._domain_separator(), struct_hash))


@view
@external
def batch_digest(sequence: uint64, prev_hash: bytes32, first_transfer: uint64, last_transfer: uint64,
                 entry_count: uint64, total: uint256, root: bytes32, cut_time: uint64) -> bytes32:
    """
    @notice The EIP-712 digest the host signs for these fields, under this contract's domain.
    """
    return self._digest(sequence, prev_hash, first_transfer, last_transfer, entry_count, total, root, cut_time)


@pure
@internal
def _recover(digest: bytes32, signature: Bytes[65]) -> address:
    assert len(signature) == 65, "accrue: signature is not 65 bytes"
    r: uint256 = convert(extract32(signature, 0), uint256)
    s: uint256 = convert(extract32(signature, 32), uint256)
    v: uint256 = convert(slice(signature, 64, 1), uint256)
    if v < 27:
        v += 27
    assert v == 27 or v == 28, "accrue: signature v is not 27 or 28"
    assert s <= HALF_ORDER, "accrue: signature s is high"
    return ecrecover(digest, v, r, s)


@external
def post_batch(sequence: uint64, prev_hash: bytes32, first_transfer: uint64, last_transfer: uint64,
               entry_count: uint64, total: uint256, root: bytes32, cut_time: uint64,
               signature: Bytes[65]) -> bytes32:
    """
    @notice Accepts the next batch of the chain when the registered signer signed it.
    @return the batch's EIP-712 digest, the prev_hash of the batch after it
    """
    assert sequence == self.last_sequence + 1, "accrue: sequence is not the next one"
    assert prev_hash == self.last_digest, "accrue: previous hash does not match"
    assert first_transfer == self.last_transfer + 1, "accrue: transfer range does not follow the last batch"
    assert last_transfer >= first_transfer, "accrue: transfer range is empty"
    assert entry_count > 0, "accrue: batch has no entries"
    digest: bytes32 = self._digest(sequence, prev_hash, first_transfer, last_transfer, entry_count, total,
                                   root, cut_time)
    recovered: address = self._recover(digest, signature)
    assert recovered != empty(address) and recovered == self.signer, "accrue: not signed by the host signer"

    self.last_sequence = sequence
    self.last_digest = digest
    self.last_transfer = last_transfer
    self.roots[sequence] = root
    self.unclaimed[sequence] = total
    self.outstanding += total * WEI_PER_UNIT
    log BatchPosted(sequence=sequence, digest=digest, root=root, total=total, entryCount=entry_count,
                    firstTransfer=first_transfer, lastTransfer=last_transfer, cutTime=cut_time)
    return digest


@pure
@internal
def _hash_pair(a: bytes32, b: bytes32) -> bytes32:
    if convert(a, uint256) < convert(b, uint256):
        return keccak256(concat(a, b))
    return keccak256(concat(b, a))


@pure
@external
def leaf(account: address, amount: uint256) -> bytes32:
    """
    @notice The StandardMerkleTree leaf of an entry.
    """
    return keccak256(keccak256(abi_encode(account, amount)))


@view
@external
def can_claim(sequence: uint64, account: address, amount: uint256, proof: DynArray[bytes32, MAX_PROOF]) -> bool:
    """
    @notice Whether claim() with these arguments would pay (funds aside).
    """
    root: bytes32 = self.roots[sequence]
    if root == empty(bytes32) or self.claimed[sequence][account] or amount > self.unclaimed[sequence]:
        return False
    node: bytes32 = keccak256(keccak256(abi_encode(account, amount)))
    for p: bytes32 in proof:
        node = self._hash_pair(node, p)
    return node == root


@nonreentrant
@external
def claim(sequence: uint64, account: address, amount: uint256, proof: DynArray[bytes32, MAX_PROOF]) -> uint256:
    """
    @notice Pays an entry (account, amount) of posted batch `sequence` to account, once.
    @return the wei paid
    """
    root: bytes32 = self.roots[sequence]
    assert root != empty(bytes32), "accrue: no such batch"
    assert not self.claimed[sequence][account], "accrue: already claimed"
    node: bytes32 = keccak256(keccak256(abi_encode(account, amount)))
    for p: bytes32 in proof:
        node = self._hash_pair(node, p)
    assert node == root, "accrue: invalid proof"
    assert amount <= self.unclaimed[sequence], "accrue: claim exceeds the batch total"
    paid: uint256 = amount * WEI_PER_UNIT
    assert self.balance >= paid, "accrue: not enough funds deposited"

    self.claimed[sequence][account] = True
    self.unclaimed[sequence] -= amount
    self.outstanding -= paid
    log Claimed(sequence=sequence, account=account, amount=amount, paid=paid)
    if paid > 0:
        raw_call(account, b"", value=paid)
    return paid


@payable
@external
def deposit():
    """
    @notice Adds funds claims are paid from.
    """
    log Deposited(sender=msg.sender, value=msg.value)


@payable
@external
def __default__():
    log Deposited(sender=msg.sender, value=msg.value)


@nonreentrant
@external
def withdraw_surplus(to: address, amount: uint256):
    """
    @notice The owner takes back deposits beyond what posted batches still owe.
    """
    assert msg.sender == self.owner, "accrue: only the owner"
    assert self.balance >= self.outstanding + amount, "accrue: would take funds posted batches owe"
    log SurplusWithdrawn(to=to, value=amount)
    raw_call(to, b"", value=amount)


@external
def set_signer(signer: address):
    """
    @notice Rotates the host key: later batches must be signed by `signer`.
    """
    assert msg.sender == self.owner, "accrue: only the owner"
    assert signer != empty(address), "accrue: signer is the zero address"
    log SignerChanged(previous=self.signer, signer=signer)
    self.signer = signer


@external
def transfer_ownership(owner: address):
    assert msg.sender == self.owner, "accrue: only the owner"
    assert owner != empty(address), "accrue: owner is the zero address"
    log OwnershipTransferred(previous=self.owner, owner=owner)
    self.owner = owner
