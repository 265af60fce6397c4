"""Learning: the data module, plain ``nn.Module`` networks, losses, Lightning tasks, callbacks and LightningCLI.

May import core, data and metrics; workflows and cli import it.
"""
