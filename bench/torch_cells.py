"""PyTorch implementations of the cells torch.nn lacks, as a user would write them: the peer
of those cells in bench.py and, in float64, the autograd reference that tests/test_torch.py
checks fastrnn's gradients against. Each takes what torch.nn.RNN takes and returns what it
returns: input (T, B, I) or a PackedSequence, an optional h0 (L*D, B, H) (a pair (h0, c0) for a
cell with a cell state, as nn.LSTM); (output, h_n) (or (output, (h_n, c_n))), the output packed
when the input was. Parameters carry fastrnn's (and nn.RNN's) names and order,
so ``load_state_dict(model.to_torch_state_dict())`` loads a fastrnn model.
"""
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


def _reverse_within(a, lengths):
    """a (T, B, F) with each sequence's steps reversed within its own length, zeros after."""
    T = a.shape[0]
    src = lengths[None, :] - 1 - torch.arange(T)[:, None]  # (T, B): the step read
    out = a.gather(0, src.clamp(min=0)[..., None].expand(-1, -1, a.shape[2]))
    return out * (src >= 0)[..., None].to(a.dtype)


class _Loop(torch.nn.Module):
    """A recurrent cell torch.nn lacks, as a Python loop over steps: nn.RNN's calling
    convention, layers and directions; a subclass gives its parameters' shapes and init,
    the input projection of every step (one product) and one step: step(xp_t, h) -> h, or,
    with cell_state, step(xp_t, h, c) -> (h, c) and the state a pair as nn.LSTM's."""
    cell_state = False

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.suffixes = ("", "_reverse") if bidirectional else ("",)
        D, H = len(self.suffixes), hidden_size
        for k in range(num_layers):
            I = input_size if k == 0 else D * H
            for sfx in self.suffixes:
                for name, shape in self.shapes(I, H):
                    self.register_parameter(f"{name}_l{k}{sfx}", torch.nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def forward(self, x, h0=None):
        packed = isinstance(x, PackedSequence)
        if packed:
            x, lengths = pad_packed_sequence(x)
        else:
            lengths = torch.full((x.shape[1],), x.shape[0], dtype=torch.int64)
        T, B = x.shape[:2]
        live = (torch.arange(T)[:, None] < lengths[None, :])[..., None]  # (T, B, 1)
        pair = self.cell_state  # the state is (h, c), as nn.LSTM's, else h alone
        inp, finals = x, []
        for k in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(self.suffixes):
                p = lambda n: getattr(self, f"{n}_l{k}{sfx}")  # noqa: E731
                seq = _reverse_within(inp, lengths) if d else inp
                xp, step = self.project(p, seq)
                at = k * len(self.suffixes) + d
                if h0 is None:
                    s = tuple(x.new_zeros(B, self.hidden_size) for _ in range(1 + pair))
                else:
                    s = tuple(a[at] for a in h0) if pair else (h0[at],)
                hs = []
                for t in range(T):
                    new = step(xp[t], *s)
                    new = new if pair else (new,)
                    s = tuple(torch.where(live[t], a, b) for a, b in zip(new, s))  # carried past the length
                    hs.append(s[0])
                finals.append(s)
                out = torch.stack(hs)
                outs.append(_reverse_within(out, lengths) if d else out)
            inp = torch.cat(outs, dim=2)
        out = inp * live.to(inp.dtype)  # zeros past each length, as pad_packed_sequence gives
        if packed:
            out = pack_padded_sequence(out, lengths, enforce_sorted=False)
        states = tuple(torch.stack(part) for part in zip(*finals))
        return out, states if pair else states[0]


class IndRNN(_Loop):
    """IndRNN (Li et al. 2018): h_t = relu(W_ih x_t + b_ih + b_hh + u * h_{t-1}), u (H,) per
    layer and direction; initialized as fastrnn's ``indrnn`` init (u ~ U(0, 1), W_ih ~
    N(0, 0.001^2), biases 0). A step is elementwise (there is no recurrent product)."""

    @staticmethod
    def shapes(I, H):
        return (("weight_ih", (H, I)), ("weight_hh", (H,)), ("bias_ih", (H,)), ("bias_hh", (H,)))

    def reset_parameters(self):
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("weight_ih"):
                    p.normal_(0.0, 0.001)
                elif name.startswith("weight_hh"):
                    p.uniform_(0.0, 1.0)
                else:
                    p.zero_()

    @staticmethod
    def project(p, seq):
        u = p("weight_hh")
        return seq @ p("weight_ih").T + p("bias_ih") + p("bias_hh"), lambda xp, h: torch.relu(xp + u * h)


class ExpRNN(_Loop):
    """expRNN (Lezcano-Casado & Martinez-Rubio 2019): h_t = modrelu(W_ih x_t + b_ih + W h_{t-1};
    b_hh), W = matrix_exp(A), A = U - U^T from weight_hh, U's strict upper triangle row by row
    (H(H-1)/2,); modrelu(z; b) = sign(z) relu(|z| + b). W is formed once per forward pass;
    autograd differentiates through torch.linalg.matrix_exp. Initialized as fastrnn's
    ``henaff``: A block diagonal, 2 x 2 blocks [[0, t], [-t, 0]], t ~ U(-pi, pi); W_ih He-normal;
    b_ih 0, b_hh ~ U(-0.01, 0.01)."""

    @staticmethod
    def shapes(I, H):
        return (("weight_ih", (H, I)), ("weight_hh", (H * (H - 1) // 2,)), ("bias_ih", (H,)), ("bias_hh", (H,)))

    def reset_parameters(self):
        H = self.hidden_size
        rows, cols = torch.triu_indices(H, H, 1)
        pair = (cols == rows + 1) & (rows % 2 == 0)  # the 2 x 2 blocks' upper corners
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("weight_ih"):
                    torch.nn.init.kaiming_normal_(p, nonlinearity="relu")
                elif name.startswith("weight_hh"):
                    p.zero_()
                    p[pair] = torch.empty(int(pair.sum()), dtype=p.dtype).uniform_(-torch.pi, torch.pi)
                elif name.startswith("bias_hh"):
                    p.uniform_(-0.01, 0.01)
                else:
                    p.zero_()

    def project(self, p, seq):
        H = self.hidden_size
        rows, cols = torch.triu_indices(H, H, 1)
        U = seq.new_zeros(H, H).index_put((rows, cols), p("weight_hh"))
        W, b = torch.linalg.matrix_exp(U - U.T), p("bias_hh")

        def step(xp, h):
            z = xp + h @ W.T
            return torch.sign(z) * torch.relu(z.abs() + b)

        return seq @ p("weight_ih").T + p("bias_ih"), step


class LnLSTM(_Loop):
    """The LayerNorm LSTM (Ba et al. 2016, haste's form): gates = LN(W_ih x; gain_ih, bias_ih)
    + LN(W_hh h; gain_hh, bias_hh), c = f c + i g, h = o tanh(LN(c; gain_c, bias_c)), each LN
    over its row (4H, or H), eps 1e-5. nn.LSTM's weights and init, gains 1, bias_c 0. The input
    side's LayerNorm runs over every step at once."""
    cell_state = True

    @staticmethod
    def shapes(I, H):
        G = 4 * H
        return (("weight_ih", (G, I)), ("weight_hh", (G, H)), ("bias_ih", (G,)), ("bias_hh", (G,)),
                ("gain_ih", (G,)), ("gain_hh", (G,)), ("gain_c", (H,)), ("bias_c", (H,)))

    def reset_parameters(self):
        k = self.hidden_size ** -0.5
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.startswith("gain"):
                    p.fill_(1.0)
                elif name.startswith("bias_c"):
                    p.zero_()
                else:
                    p.uniform_(-k, k)

    def project(self, p, seq):
        norm = torch.nn.functional.layer_norm
        G, H = 4 * self.hidden_size, self.hidden_size
        w_hh, g_hh, b_hh, g_c, b_c = p("weight_hh"), p("gain_hh"), p("bias_hh"), p("gain_c"), p("bias_c")

        def step(xp, h, c):
            i, f, g, o = (xp + norm(h @ w_hh.T, (G,), g_hh, b_hh, 1e-5)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(norm(c, (H,), g_c, b_c, 1e-5)), c

        return norm(seq @ p("weight_ih").T, (G,), p("gain_ih"), p("bias_ih"), 1e-5), step


MODULES = {"indrnn": IndRNN, "exprnn": ExpRNN, "lnlstm": LnLSTM}  # fastrnn cell name -> its module here
