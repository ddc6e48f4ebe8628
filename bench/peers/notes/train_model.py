from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
import joblib

iris = load_iris()
model = RandomForestClassifier(n_estimators=10)
model.fit(iris.data, iris.target)
joblib.dump(model, 'model.joblib')
print("Model saved!")
