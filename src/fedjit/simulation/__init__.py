"""The simulation layer: client datasets, federated datasets, partitioners,
client sampling and the training loop.

Example:
  >>> train, test = fedjit.simulation.datasets.emnist.load_data()
  >>> ds = train.create_dataset_for_client(train.client_ids[0]).batch(20)
"""

from fedjit.simulation._client_data import ClientData, UnknownClientError
from fedjit.simulation._dataset import Dataset

__all__ = ["ClientData", "Dataset", "UnknownClientError"]
