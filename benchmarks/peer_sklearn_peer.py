"""(Copied from ../shared/peers/sklearn_peer.py.; only this note added.) Peer accuracy: scikit-learn's MLPClassifier on the digits split that the
dlrun benchmarks use (stratified 80/20, random_state=0)."""
import time
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
X, y = load_digits(return_X_y=True); X = X / 16.0
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
for seed in range(3):
    t = time.perf_counter()
    clf = MLPClassifier(hidden_layer_sizes=(128,), max_iter=300, random_state=seed).fit(Xtr, ytr)
    print(f"seed {seed} test_acc {clf.score(Xte, yte):.4f} fit {time.perf_counter()-t:.2f}s")
