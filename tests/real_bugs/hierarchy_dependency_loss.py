# source: https://github.com/Ugenteraan/Deep_Hierarchical_Classification/issues/6
# what: The hierarchical "dependency loss" compares `torch.argmax` predictions of consecutive levels and
#       builds a new float tensor from the comparison; it carries no gradient, so `beta * dloss` never
#       changes the model (training is identical for every beta).
# expect: GG303@32
# fails: no-learning
# fix: none
import torch
import torch.nn as nn


class HierarchicalLossNetwork:
    def __init__(self, alpha=1, beta=0.8, p_loss=3):
        self.alpha, self.beta, self.p_loss = alpha, beta, p_loss
        self.hierarchy = {0: [0, 1], 1: [2, 3]}

    def check_hierarchy(self, current_level, previous_level):
        bool_tensor = [
            not current_level[i].item() in self.hierarchy[previous_level[i].item()]
            for i in range(previous_level.size()[0])
        ]
        return torch.FloatTensor(bool_tensor)

    def calculate_lloss(self, predictions, true_labels):
        return (
            sum(nn.CrossEntropyLoss()(pred, lab) for pred, lab in zip(predictions, true_labels)) * self.alpha
        )

    def calculate_dloss(self, predictions, true_labels):
        dloss = 0
        for l in range(1, len(predictions)):
            current_lvl_pred = torch.argmax(nn.Softmax(dim=1)(predictions[l]), dim=1)
            prev_lvl_pred = torch.argmax(nn.Softmax(dim=1)(predictions[l - 1]), dim=1)
            D_l = self.check_hierarchy(current_lvl_pred, prev_lvl_pred)
            l_prev = torch.where(prev_lvl_pred == true_labels[l - 1], 0.0, 1.0)
            l_curr = torch.where(current_lvl_pred == true_labels[l], 0.0, 1.0)
            dloss += torch.sum(
                torch.pow(self.p_loss, D_l * l_prev) * torch.pow(self.p_loss, D_l * l_curr) - 1
            )
        return self.beta * dloss


torch.manual_seed(0)
model = nn.Linear(6, 2 + 4)
criterion = HierarchicalLossNetwork()
x = torch.randn(8, 6)
superclass, subclass = torch.randint(0, 2, (8,)), torch.randint(0, 4, (8,))
out = model(x)
prediction = [out[:, :2], out[:, 2:]]
dloss = criterion.calculate_dloss(prediction, [superclass, subclass])
lloss = criterion.calculate_lloss(prediction, [superclass, subclass])
total_loss = lloss + dloss
total_loss.backward()
assert dloss.requires_grad, "the dependency loss has no gradient: beta has no effect on training"
